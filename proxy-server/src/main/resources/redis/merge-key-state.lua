-- One key's shared state, merged atomically (contract §14): never read-then-write from a client.
-- KEYS[1]  megallm:{pool}:key:<sha256>   (a hash)
-- ARGV     1 sha256, 2 kind, 3 until (epoch ms), 4 consecutive 429s, 5 recheck (s), 6 reason ('' = none),
--          7 at (epoch ms of the change), 8 clears ('1': a recovery or reset of an earlier failure/rest),
--          9 instance id, 10 channel, 11 ttl (ms), 12 now (the sender's epoch ms)
-- Merge: a later deadline wins; a failure is not forgotten (only a recovery made after it clears it);
-- a recovery is not forgotten either: a failure or rest from before the last recovery or reset
-- ('cleared', epoch ms) is refused, however it arrives (an instance started again on an old
-- KEY_STATE_FILE, one back from a network cut); 'at' is when the sender's state came about.
-- An entry of another type than a hash under the key's name (a hand in Redis, another program) is
-- not ours: HMGET would fail on it, and the key's state would not be shared again until it went.
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' and t ~= 'hash' then
  redis.call('DEL', KEYS[1])
end
local cur = redis.call('HMGET', KEYS[1], 'kind', 'until', 'strikes', 'recheck', 'reason', 'at', 'cleared')
local kind = ARGV[2]
local untl = tonumber(ARGV[3])
-- A stored time later than the sender's clock (a clock ahead, a hand in Redis) is no time at all:
-- else a reset made now would lose to it until that time came. (Not "now": the sender's own
-- state came about a moment before it sent it, and would still lose.)
local now = tonumber(ARGV[12]) or math.huge
local function past(t)
  t = tonumber(t) or 0
  if t > now then
    return 0
  end
  return t
end
local at = math.min(tonumber(ARGV[7]) or 0, now)
local clears = ARGV[8] == '1'
local take = true
if not clears and kind ~= 'available' and at < past(cur[7]) then
  take = false
elseif cur[1] then
  local cu = tonumber(cur[2]) or 0
  local cat = past(cur[6])
  if cur[1] == 'failed' then
    if kind == 'failed' then
      take = untl >= cu or (clears and at >= cat)
    else
      take = clears and at >= cat
    end
  elseif cur[1] == 'cooling_down' then
    if kind == 'cooling_down' then
      take = untl >= cu
    elseif kind == 'available' then
      -- A recovery sent again after a cut is as old as it is: a rest that came after it stays.
      take = (clears and at >= cat) or cu <= at
    end
  end
end
if take then
  redis.call('HSET', KEYS[1], 'kind', kind, 'until', ARGV[3], 'strikes', ARGV[4], 'recheck', ARGV[5],
    'reason', ARGV[6], 'at', ARGV[7], 'by', ARGV[9])
  if clears then
    redis.call('HSET', KEYS[1], 'cleared', ARGV[7])
  end
  cur = {kind, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]}
  -- The state's time goes last (the reason holds no '|'): a receiver whose own state of the key
  -- came about later keeps it (its change is merged here in turn) instead of this older one.
  redis.call('PUBLISH', ARGV[10], 's|' .. ARGV[9] .. '|' .. ARGV[1] .. '|' .. kind .. '|' .. ARGV[3] .. '|'
    .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6] .. '|' .. ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ARGV[11])
return {take and 1 or 0, cur[1], cur[2] or '0', cur[3] or '0', cur[4] or '0', cur[5] or '', cur[6] or '0'}
