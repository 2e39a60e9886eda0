-- What a packet's payload speaks, identified by content ('ssh', 'http', 'tls', 'dns', 'quic'),
-- and the server name of a TLS ClientHello (attacker-controlled text, at most 255 bytes).
-- Nullable without a default: adding them rewrites no partition, and rows stored before
-- this migration read NULL, as records of agents older than the fields decode.
ALTER TABLE raw_packets
    ADD COLUMN app_proto text,
    ADD COLUMN tls_sni   text;
