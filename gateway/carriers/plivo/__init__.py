"""Plivo: answer-URL webhooks answered with Plivo XML, bidirectional Audio Streams, the Call REST API.

`carrier.PlivoCarrier` is the whole carrier behind `carriers.base.Carrier`; `settings` reads its
variables, `webhook` writes the XML and checks V3 signatures and ids, `stream` decodes and encodes the
Audio Stream's JSON frames, `rest` acts on live calls. Nothing is imported here, so that importing one
module never drags in the others.
"""
