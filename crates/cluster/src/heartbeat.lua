-- A node says it is alive and learns how many are: the nodes seen within ARGV[2] ms.
-- KEYS[1]: a sorted set of node ids by last-seen time (ms of the Redis clock).
-- ARGV: node id, liveness window (ms).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
