-- Claims (or, for its holder, extends) the lease on a failed key's trial: one instance at a time.
-- KEYS[1] megallm:{pool}:trial:<sha256>; ARGV 1 instance id, 2 lease (ms)
-- Returns -1 when the caller holds the lease, else the milliseconds the holder keeps it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return -1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return -1
end
return redis.call('PTTL', KEYS[1])
