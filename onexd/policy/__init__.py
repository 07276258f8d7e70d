"""Policy: YAML safety, schemas, models, bundle loading, signing, snapshots."""
