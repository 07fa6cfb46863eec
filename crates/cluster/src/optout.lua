-- One opt-out change, shared: the state hash (number -> its opt-outs, one per line: `*` or a
-- sender) and the change log every node reads, updated together.
-- KEYS[1]: the state hash; KEYS[2]: the change stream.
-- ARGV: the change line (`out NUMBER SENDER|*` or `in NUMBER`), op, number, sender ('' for
-- `in`), the stream's approximate length cap.
local op, number, sender = ARGV[2], ARGV[3], ARGV[4]
if op == 'in' then
  redis.call('HDEL', KEYS[1], number)
else
  local current = redis.call('HGET', KEYS[1], number)
  if not current then
    redis.call('HSET', KEYS[1], number, sender)
  else
    local found = false
    for held in string.gmatch(current, '[^\n]+') do
      if held == sender then found = true end
    end
    if not found then
      redis.call('HSET', KEYS[1], number, current .. '\n' .. sender)
    end
  end
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'change', ARGV[1])
