-- Settle (and release): replace what a reservation charged to the windows
-- and balance of one hash tag group by the actual usage, release its leases
-- on the group's concurrency slots, add the usage to the consumer's daily
-- totals, once per request id and group.
-- The algorithms are described in window.go ("Sliding windows") and
-- slot.go ("Concurrency slots").
--
-- KEYS: the marker key when has_marker is 1, the window hashes, the slot
--       sorted sets, the balance key when has_balance is 1, the usage hash
--       when has_usage is 1.
-- ARGV: now_us ("" = the server's TIME), window_count, has_marker,
--       has_balance, has_usage, marker_ttl_ms, has_event, slot_count,
--       id (the reservation, naming its leases),
--       4 per window: buckets, bucket_width_us, at_us, delta,
--       then when has_balance: delta,
--       then when has_usage: ttl_ms, field_count, field, increment, ...,
--       then when has_event: stream_maxlen, record.
-- KEYS end with the usage-event stream when has_event is 1: the record is
-- appended under the same marker, so a replay never appends it twice.
-- Reply: 1 when applied, 0 when this id was already settled.

local function fmt(x) return string.format('%d', x) end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local nw = tonumber(ARGV[2])
local has_marker = ARGV[3] == '1'
local has_balance = ARGV[4] == '1'
local has_usage = ARGV[5] == '1'
local has_event = ARGV[7] == '1'
local ns = tonumber(ARGV[8])
local id = ARGV[9]

local k = 0
if has_marker then
  k = 1
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[6]) then
    return 0
  end
end

local function advance(key, n, lo)
  local st = redis.call('HMGET', key, 'o', 't')
  local o = tonumber(st[1])
  if not o then
    return false
  end
  if lo <= o then
    return true
  end
  if lo - o > n then
    redis.call('DEL', key)
    return false
  end
  local total = tonumber(st[2]) or 0
  for i = o, lo - 1 do
    local f = fmt(i)
    local v = redis.call('HGET', key, f)
    if v then
      total = total - tonumber(v)
      redis.call('HDEL', key, f)
    end
  end
  redis.call('HSET', key, 'o', fmt(lo), 't', fmt(total))
  return true
end

local a = 9
for i = 1, nw do
  local key = KEYS[k + i]
  local n = tonumber(ARGV[a + 1])
  local width = tonumber(ARGV[a + 2])
  local at = tonumber(ARGV[a + 3])
  local delta = tonumber(ARGV[a + 4])
  a = a + 4
  if delta ~= 0 then
    local idx = math.floor(now / width)
    local lo = idx - n
    local exists = advance(key, n, lo)
    local b = math.floor(at / width)
    local target
    if exists and b >= lo then
      target = b
    elseif delta > 0 then
      target = idx
      if not exists then
        redis.call('HSET', key, 'o', fmt(lo))
      end
    end
    if target then
      redis.call('HINCRBY', key, fmt(target), fmt(delta))
      redis.call('HINCRBY', key, 't', fmt(delta))
      redis.call('PEXPIRE', key, fmt(math.ceil((n + 1) * width / 1000)))
    end
  end
end
k = k + nw

-- Leases are by id, so a release that runs twice (a refusal's release
-- retried, a settlement without a marker) frees nothing more.
for i = 1, ns do
  redis.call('ZREM', KEYS[k + i], id)
end
k = k + ns

if has_balance then
  k = k + 1
  local delta = tonumber(ARGV[a + 1])
  a = a + 1
  -- A balance whose period has ended and expired is not recreated.
  if delta ~= 0 and redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('INCRBY', KEYS[k], fmt(delta))
  end
end

if has_usage then
  k = k + 1
  local ttl = ARGV[a + 1]
  local count = tonumber(ARGV[a + 2])
  a = a + 2
  for _ = 1, count do
    redis.call('HINCRBY', KEYS[k], ARGV[a + 1], ARGV[a + 2])
    a = a + 2
  end
  redis.call('PEXPIRE', KEYS[k], ttl)
end

if has_event then
  k = k + 1
  redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[a + 1], '*', 'record', ARGV[a + 2])
  a = a + 2
end
return 1
