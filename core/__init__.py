"""The ground floor: what every app uses and no domain owns (below `accounts`).

Nothing here imports an app; the import-linter contract in pyproject.toml keeps it so.
"""
