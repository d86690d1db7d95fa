"""Twilio: Programmable Voice webhooks, bidirectional Media Streams and the REST API for live calls.

`carrier.TwilioCarrier` is the whole carrier behind the `carriers.base.Carrier` interface; `settings`
reads its environment variables, `webhook` writes its TwiML and checks its signatures, `stream`
decodes and encodes the media stream's frames, and `rest` updates live calls. Wire format:
protocol-reference.md §4. Nothing is imported here, so that importing one module never drags in the
others (and never an import cycle).
"""
