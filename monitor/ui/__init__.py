"""`monitor ui`: Datasette on the project's database, with the project's metadata and a small
plugin (pages for stories, folded search, mentions, feedback buttons, the password check)."""
