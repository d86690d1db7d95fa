"""Agent profiles: named agents (AGENTS_FILE), the route from a dialed number to one, and the book that
holds them for the process (reloaded on SIGHUP)."""
