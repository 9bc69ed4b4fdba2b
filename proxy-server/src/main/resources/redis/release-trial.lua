-- Ends a trial's lease, only for the instance that holds it. KEYS[1] the lease; ARGV[1] instance id.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
