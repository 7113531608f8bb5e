"""Terminal renderings of library results (rich): the only place besides the commands that prints."""
