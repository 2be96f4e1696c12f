-- Set or add to a balance, creating it with its allotment and TTL first
-- when it does not exist (as an admission would).
--
-- KEYS: the balance key.
-- ARGV: op ("set" or "add"), value, allotment, ttl_ms (0 = none).
-- Reply: the balance after the operation.

local function fmt(x) return string.format('%d', x) end

local key = KEYS[1]
local v = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])
local cur = redis.call('GET', key)
if not cur then
  if ttl > 0 then
    redis.call('SET', key, ARGV[3], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[3])
  end
  cur = ARGV[3]
end
if ARGV[1] == 'set' then
  redis.call('SET', key, fmt(v), 'KEEPTTL')
  return v
end
return redis.call('INCRBY', key, fmt(v))
