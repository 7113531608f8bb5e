"""Terminal renderings of library results (rich): one module per command; the only place besides the commands that prints."""
