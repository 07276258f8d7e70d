"""Identity: who is calling (Unix peers, tokens, API keys)."""
