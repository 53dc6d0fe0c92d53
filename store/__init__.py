"""Ports and their backends: room store, webhook receipts, event log, relay directory.

Each port is a narrow `typing.Protocol` beside its in-memory implementation
(`room_store`, `webhook_receipts`, `event_log`, `relay_directory`); its Redis
implementation is the `redis_` module of the same name, connected through
`redis_client`. Backends import the domain and redis, never a transport: a
failed call is `StoreUnavailable` (`errors`), mapped to a status at the edge.
"""
