"""The message pipeline: what happens to a message between "read from the stream" and "acked".

`dispatcher` reads records in order and starts a message's work; `pipeline` declares the stages and
runs them; `stages/` holds one module per stage; `context` is the one typed object they share;
`caller` is the retry / breaker / fallback loop of the provider call; `turns` the per-agent and
per-conversation FIFO turns; `acker` the in-order acks; `records` builds the output events.
"""
