"""Human renderings (rich, on stderr) of library summaries; one module per command."""
