-- Ends a trial's lease, only for the instance that holds it. KEYS[1] the lease; ARGV[1] instance id.
-- pcall: an entry of another type (a hand in Redis) is not ours to end, and not an error either.
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
