"""SignalWire: cXML (Compatibility API) webhooks, bidirectional media streams and the LaML REST API.

SignalWire's Compatibility API speaks Twilio's dialect: cXML is TwiML (written here with the twilio
package's builders), the media stream's messages are Twilio Media Streams' (decoded by the Twilio
stream face, see `stream`), and webhooks are signed with Twilio's HMAC-SHA1 scheme, keyed by the
project's Signing Key and sent as `X-SignalWire-Signature`. What differs: every id is a UUID, the REST
API lives under the Space's own host, and the media handshake is not signed.

`carrier.SignalWireCarrier` is the whole carrier behind `carriers.base.Carrier`; `settings` reads its
variables, `webhook` checks signatures and ids, `stream` adapts the Twilio face, `rest` updates live
calls. Nothing is imported here, so that importing one module never drags in the others.
"""
