-- Adds a batch of one instance's increments to a counter summed over all instances (§14).
-- KEYS[1] megallm:{pool}:n:<counter>; ARGV 1 delta, 2 lifetime in ms (0: none).
-- A window's lifetime is set by its first increment and never extended; returns the new total.
-- A value that is not a count (not an integer, or below zero, or not a string at all: a hand in
-- Redis) starts again from 0: INCRBY would fail on the one and be retried forever, and the other
-- would let a client past its limit.
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' then
  local now = t == 'string' and redis.call('GET', KEYS[1])
  if not (now and #now <= 18 and string.match(now, '^%d+$')) then
    redis.call('DEL', KEYS[1])
  end
end
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return n
