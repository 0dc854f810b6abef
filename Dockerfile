# smsgw gateway image. Build: docker build -t smsgw .
# Run:   docker run --env-file smsgw.env -p 8080:8080 smsgw run
# Give it a Redis (SMSGW_REDIS_URL) and a hash key (SMSGW_SECURITY_HASH_KEY) through the
# environment; the embedded store is for trying things out only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smsgw ./smsgw
COPY grammar ./grammar
COPY config ./config
RUN pip install '.[fast]' && useradd --system --home /app smsgw && mkdir -p /app/var/log \
    && chown -R smsgw /app/var
USER smsgw
EXPOSE 8080
ENTRYPOINT ["smsgw"]
CMD ["run"]
