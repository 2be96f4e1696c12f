-- Renew: extend the leases one reservation holds on the concurrency slots
-- of one hash tag group to lease_us from now. A lease that has expired or
-- was released is not taken again: the slot may be full by now.
-- The algorithm is described in slot.go ("Concurrency slots").
--
-- KEYS: the slot sorted sets.
-- ARGV: now_us ("" = the server's TIME), id, then 2 per slot: lease_us,
--       key_ttl_ms.
-- Reply: 1 per slot when its lease was renewed, 0 when it was lost.

local function fmt(x) return string.format('%d', x) end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local id = ARGV[2]

local reply = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local lease = tonumber(ARGV[2 + (i - 1) * 2 + 1])
  local keep = tonumber(ARGV[2 + (i - 1) * 2 + 2])
  local score = redis.call('ZSCORE', key, id)
  if score and tonumber(score) > now then
    redis.call('ZADD', key, 'XX', fmt(now + lease), id)
    if redis.call('PTTL', key) < keep then
      redis.call('PEXPIRE', key, fmt(keep))
    end
    reply[i] = 1
  else
    if score then
      redis.call('ZREM', key, id)
    end
    reply[i] = 0
  end
end
return reply
