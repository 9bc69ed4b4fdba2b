-- Claims (or, for its holder, extends) the lease on a failed key's trial: one instance at a time.
-- KEYS[1] megallm:{pool}:trial:<sha256>; ARGV 1 instance id, 2 lease (ms)
-- Returns -1 when the caller holds the lease, else the milliseconds the holder keeps it (> 0).
-- An entry no instance wrote (not a string, or one without a lifetime: every lease this script
-- grants has one) is replaced: it would block the key's trials for good, or be read as granted.
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' and (t ~= 'string' or redis.call('PTTL', KEYS[1]) < 0) then
  redis.call('DEL', KEYS[1])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return -1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return -1
end
return math.max(redis.call('PTTL', KEYS[1]), 1)
