-- One contract's GCRA in Redis: lease up to `want` tokens, after giving back `returned` unused
-- ones of the caller's previous lease (only while that lease is still the newest grant, so a
-- returned slot is never one another node holds).
-- KEYS[1]: the bucket's theoretical arrival time, microseconds of the Redis clock.
-- ARGV: tps, burst, want, returned, lease_end (the TAT the caller's last grant left).
-- Returns {granted, tat}: tat as a decimal string (exact), the caller's next lease_end.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = 1000000 / tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2]) * interval
local want = tonumber(ARGV[3])
local returned = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if returned > 0 and tat == tonumber(ARGV[5]) then
  tat = math.max(tat - math.floor(returned * interval), now)
end
local base = math.max(tat, now)
local room = math.floor((now + tolerance - base) / interval)
local granted = math.max(0, math.min(want, room))
if granted > 0 then
  tat = math.ceil(base + granted * interval)
end
local text = string.format('%.0f', tat)
if granted > 0 or returned > 0 then
  local ttl_ms = math.max(1, math.ceil((tat - now) / 1000)) + 1000
  redis.call('SET', KEYS[1], text, 'PX', ttl_ms)
end
return {granted, text}
