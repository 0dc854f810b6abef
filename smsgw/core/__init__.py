"""What every part uses: text and numbers, clocks, money, keyed hashing, reply rendering."""
