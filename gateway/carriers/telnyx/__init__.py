"""Telnyx: TeXML webhooks answered with `<Connect><Stream>`, bidirectional RTP media streams, the TeXML
REST API for live calls.

`carrier.TelnyxCarrier` is the whole carrier behind `carriers.base.Carrier`; `settings` reads its
variables, `webhook` writes the TeXML and checks Ed25519 signatures and ids, `stream` decodes and encodes
the media stream's JSON frames, `rest` acts on live calls. Nothing is imported here, so that importing one
module never drags in the others.

Telnyx's own pages each wire detail comes from (read 2026-11; the modules cite them by these keys):

- TX-S  TeXML `<Stream>`: https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/stream
        (attributes url, track, codec, bidirectionalMode mp3|rtp, bidirectionalCodec, bidirectionalSamplingRate;
        `<Parameter name value>` children "included in the start message sent over the WebSocket connection")
- TX-R  TeXML streams, `<Start>` vs `<Connect>`: https://developers.telnyx.com/docs/voice/texml/rest-api/streams
        ("nested inside a <Connect> verb ... the call flow waits for the streaming operation to stop")
- TX-A  Media streaming WebSocket (AsyncAPI):
        https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket
- TX-F  TeXML instruction fetching (the webhook's fields, GET or POST):
        https://developers.telnyx.com/docs/voice/programmable-voice/texml-instruction-fetching
- TX-W  TeXML callbacks and their signature headers (`telnyx-signature-ed25519` over `timestamp|payload`,
        `telnyx-timestamp`): https://developers.telnyx.com/api-reference/callbacks/texml-stream
- TX-K  Webhook verification with the account's public key (Mission Control Portal):
        https://developers.telnyx.com/docs/development/sdk/python/webhooks, and the SDK's
        team-telnyx/telnyx-python `src/telnyx/lib/webhook_verification.py` (5-minute tolerance)
- TX-U  TeXML REST "Update call" (form-encoded `Status`, `Texml`, Bearer API key):
        https://developers.telnyx.com/api-reference/texml-rest-commands/update-call
"""
