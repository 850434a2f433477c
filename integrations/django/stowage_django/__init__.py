"""Stowage for Django: `manage.py db_backup` and `db_restore` over the Stowage CLI."""
