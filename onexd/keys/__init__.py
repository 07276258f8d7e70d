"""Keys: the key-encryption key, the signing keystore and its rotation."""
