"""Secrets: sources, staging into jobs as files, masking of job output."""
