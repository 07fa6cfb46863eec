-- An account's shared balance (micro-units): take back what a node returns, then grant it up
-- to what it asks, never more than the balance holds.
-- KEYS[1]: the balance. ARGV: returned, wanted.
local balance = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
local granted = math.min(balance, tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%.0f', balance - granted))
return granted
