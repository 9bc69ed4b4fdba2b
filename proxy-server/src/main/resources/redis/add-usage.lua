-- Adds one instance's batch of usage counts to the totals over every instance (§14), exactly once.
-- KEYS[1] megallm:{pool}:usage      hash: "<k|m|c>:<id>:<count>" -> total; "since" -> epoch ms
-- KEYS[2] megallm:{pool}:usage:seq  hash: instance id -> number of the last batch applied
-- ARGV 1 instance, 2 batch number, 3 "1" when the batch holds all this instance ever counted (its
-- first, or after Redis lost the totals), 4 the instance's start (epoch ms), 5 now (epoch ms),
-- then field, increment pairs.
-- A batch sent again because its answer was lost is not applied twice: its number is not above the
-- last one applied. Returns {0} when Redis does not know this instance and the batch is not a full
-- one (Redis restarted empty, or was flushed): the instance then sends all it counted, as a full
-- batch. Otherwise {1, field, total, field, total, ...}: the totals once this batch is in.
-- A value that is not an integer (a hand in Redis) must not stop the script halfway through a
-- batch: Redis keeps the HINCRBYs before the error, and the batch, sent again, added them again
-- every second. A total that is not one starts again from 0; a sequence number that is not one
-- (or one above this batch's) counts as the one before this batch (this batch goes in, once; a full batch would count the
-- instance's whole history twice, since the totals were not lost).
local function integer(v)
  if v and #v <= 18 and string.match(v, '^-?%d+$') then
    return tonumber(v)
  end
  return nil
end
local totals, seqs = KEYS[1], KEYS[2]
-- Either entry of another type than a hash (a hand in Redis, another program) would make every
-- batch fail for good: both go, as if Redis had restarted empty, and every running instance sends
-- all it counted again (the one without the other would count twice, or lose the totals).
local tt, ts = redis.call('TYPE', totals).ok, redis.call('TYPE', seqs).ok
if (tt ~= 'none' and tt ~= 'hash') or (ts ~= 'none' and ts ~= 'hash') then
  redis.call('DEL', totals, seqs)
end
local me, seq, full = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local stored = redis.call('HGET', seqs, me)
local applied = integer(stored)
-- An instance sends one batch at a time, numbered one above the last applied, so a number above
-- this batch's was never this instance's: written by hand, it would skip every batch for good.
if stored and (not applied or applied > seq) then
  applied = seq - 1
end
if not applied and not full then
  return {0}
end
if not applied or applied < seq then
  for i = 6, #ARGV, 2 do
    local now = redis.call('HGET', totals, ARGV[i])
    if now and not integer(now) then
      redis.call('HDEL', totals, ARGV[i])
    end
  end
  for i = 6, #ARGV, 2 do
    redis.call('HINCRBY', totals, ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', seqs, me, seq)
  -- "since": the earliest start among the instances whose whole count is in.
  local since = integer(redis.call('HGET', totals, 'since'))
  if not since then
    redis.call('HSET', totals, 'since', full and ARGV[4] or ARGV[5])
  elseif full and since > tonumber(ARGV[4]) then
    redis.call('HSET', totals, 'since', ARGV[4])
  end
end
local all = redis.call('HGETALL', totals)
table.insert(all, 1, 1)
return all
