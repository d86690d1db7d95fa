"""The load bench: the gateway and a forward-only relay (the floor of the stack) under simulated calls.

`command` is the command line, `driver` runs one scenario, `report` turns what the processes saw into
figures; `echo_proc`, `callers_proc` and `relay` are the processes it starts, `load_caller` the lean
simulated caller and `stamp` the per-frame stamps hidden in the audio.
"""
