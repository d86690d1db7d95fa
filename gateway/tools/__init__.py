"""Tools the agent can call: the tools file (`spec`), HTTP tools (`http_tool`), the built-ins end_call and
transfer_call (`builtins`), and the runner that checks a call's arguments and runs it (`runner`)."""
