"""Vonage: Voice API answer webhooks answered with an NCCO, a `connect` to a WebSocket carrying 16-bit
linear PCM, and the Voice REST API for live calls.

Vonage is the carrier whose audio is converted: its stream carries L16 at 8 or 16 kHz in binary frames of
exactly 20 ms, while the Realtime session runs 24 kHz PCM. `carrier.VonageCarrier` is the whole carrier
behind `carriers.base.Carrier`; `settings` reads its variables, `webhook` writes the NCCO and checks the
signed-webhook JWT and the ids, `convert` resamples (stateful, per direction, whole frames), `stream`
decodes and encodes the WebSocket's frames, `rest` acts on live calls. Nothing is imported here, so that
importing one module never drags in the others.
"""
