"""The operator console (interfaces.md, "The operator console (web)"): people and roles
(people.py), sessions (sessions.py), pages and forms (web.py), words (texts.py)."""
