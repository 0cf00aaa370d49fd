"""Event streams (SPEC §13) on NATS JetStream: committed transfers in (`consumer`), settlement events out (`relay`,
from the outbox of app/db/outbox.py). `messages` is the wire format of both, pure; `broker` connects and creates
the streams."""
