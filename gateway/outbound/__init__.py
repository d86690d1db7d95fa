"""Calls the gateway places: their settings (`settings`), the body of `POST /calls` read and checked
(`request`), and the book of the calls placed by this process (`calls`). The HTTP side is
`http/outbound.py` (the call API) and `http/status.py` (the carrier's status callbacks)."""
