-- Adds a batch of one instance's increments to a counter summed over all instances (§14).
-- KEYS[1] megallm:{pool}:n:<counter>; ARGV 1 delta, 2 lifetime in ms (0: none).
-- A window's lifetime is set by its first increment and never extended; returns the new total.
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return n
