-- Reserve: check every window of one hash tag group (and the balance and
-- the concurrency slots when the group holds them) and, only when all have
-- room, charge all of them and take a lease on each slot.
-- The algorithms are described in window.go ("Sliding windows") and
-- slot.go ("Concurrency slots").
--
-- KEYS: the window hashes, then the balance key when has_balance is 1,
--       then the slot sorted sets.
-- ARGV: now_us ("" = the server's TIME), window_count, has_balance,
--       slot_count, id (the reservation, naming its leases),
--       4 per window: limit, buckets, bucket_width_us, amount,
--       then when has_balance: allotment, ttl_ms (0 = none), full_cost, input_cost,
--       then 3 per slot: max, lease_us, key_ttl_ms.
-- Reply: allowed, now_us, balance, balance_refused, balance_reserved,
--        then 5 per window: remaining, reset_us, refused, too_large, retry_us,
--        then 2 per slot: in_flight, refused.
-- A window hash holds 'o' (oldest bucket that may hold something), 't'
-- (running total) and one field per non-empty bucket index. A slot's
-- sorted set holds one member per lease, scored by its expiry in µs.

local function fmt(x) return string.format('%d', x) end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local nw = tonumber(ARGV[2])
local has_balance = ARGV[3] == '1'
local ns = tonumber(ARGV[4])
local id = ARGV[5]

-- advance drops the buckets older than lo and returns the window's total
-- and whether the hash still exists.
local function advance(key, n, lo)
  local st = redis.call('HMGET', key, 'o', 't')
  local o = tonumber(st[1])
  if not o then
    return 0, false
  end
  local total = tonumber(st[2]) or 0
  if lo <= o then
    return total, true
  end
  if lo - o > n then
    redis.call('DEL', key)
    return 0, false
  end
  for i = o, lo - 1 do
    local f = fmt(i)
    local v = redis.call('HGET', key, f)
    if v then
      total = total - tonumber(v)
      redis.call('HDEL', key, f)
    end
  end
  redis.call('HSET', key, 'o', fmt(lo), 't', fmt(total))
  return total, true
end

local function bucket(key, j)
  return tonumber(redis.call('HGET', key, fmt(j))) or 0
end

local allowed = true
local win = {}
for i = 1, nw do
  local a = 5 + (i - 1) * 4
  local w = {
    key = KEYS[i],
    limit = tonumber(ARGV[a + 1]),
    n = tonumber(ARGV[a + 2]),
    width = tonumber(ARGV[a + 3]),
    amount = tonumber(ARGV[a + 4]),
    refused = 0, too_large = 0, retry = 0,
  }
  w.idx = math.floor(now / w.width)
  w.lo = w.idx - w.n
  w.total, w.exists = advance(w.key, w.n, w.lo)
  if w.amount > w.limit then
    w.refused, w.too_large = 1, 1
  elseif w.total + w.amount > w.limit then
    w.refused = 1
    local need = w.total + w.amount - w.limit
    local freed = 0
    w.retry = (w.idx + w.n + 1) * w.width - now
    for j = w.lo, w.idx do
      freed = freed + bucket(w.key, j)
      if freed >= need then
        w.retry = (j + w.n + 1) * w.width - now
        break
      end
    end
  end
  if w.refused == 1 then
    allowed = false
  end
  win[i] = w
end

local bal, reserved, balance_refused = 0, 0, 0
local bkey
if has_balance then
  bkey = KEYS[nw + 1]
  local a = 5 + nw * 4
  local allotment = tonumber(ARGV[a + 1])
  local ttl = tonumber(ARGV[a + 2])
  local full = tonumber(ARGV[a + 3])
  local input = tonumber(ARGV[a + 4])
  local v = redis.call('GET', bkey)
  if v then
    bal = tonumber(v)
  else
    bal = allotment
    if ttl > 0 then
      redis.call('SET', bkey, fmt(allotment), 'PX', ttl)
    else
      redis.call('SET', bkey, fmt(allotment))
    end
  end
  reserved = math.min(full, bal)
  if bal <= 0 or bal < input then
    balance_refused = 1
    allowed = false
  end
end

local slots = {}
local sk = nw + (has_balance and 1 or 0)
local sa = 5 + nw * 4 + (has_balance and 4 or 0)
for i = 1, ns do
  local a = sa + (i - 1) * 3
  local s = {
    key = KEYS[sk + i],
    max = tonumber(ARGV[a + 1]),
    lease = tonumber(ARGV[a + 2]),
    keep = tonumber(ARGV[a + 3]),
    refused = 0,
  }
  redis.call('ZREMRANGEBYSCORE', s.key, '-inf', fmt(now))
  s.count = redis.call('ZCARD', s.key)
  -- Leases are by id: one already held is renewed, never counted twice.
  if not redis.call('ZSCORE', s.key, id) and s.count >= s.max then
    s.refused = 1
    allowed = false
  end
  slots[i] = s
end

if allowed then
  for i = 1, ns do
    local s = slots[i]
    redis.call('ZADD', s.key, fmt(now + s.lease), id)
    if redis.call('PTTL', s.key) < s.keep then
      redis.call('PEXPIRE', s.key, fmt(s.keep))
    end
    s.count = redis.call('ZCARD', s.key)
  end
  for i = 1, nw do
    local w = win[i]
    if w.amount ~= 0 then
      if not w.exists then
        redis.call('HSET', w.key, 'o', fmt(w.lo))
      end
      redis.call('HINCRBY', w.key, fmt(w.idx), fmt(w.amount))
      redis.call('HINCRBY', w.key, 't', fmt(w.amount))
      redis.call('PEXPIRE', w.key, fmt(math.ceil((w.n + 1) * w.width / 1000)))
      w.total = w.total + w.amount
    end
  end
  if has_balance then
    if reserved ~= 0 then
      redis.call('DECRBY', bkey, fmt(reserved))
    end
    bal = bal - reserved
  end
else
  reserved = 0
end

local reply = {allowed and 1 or 0, now, bal, balance_refused, reserved}
for i = 1, nw do
  local w = win[i]
  local remaining = w.limit - w.total
  if remaining < 0 then
    remaining = 0
  end
  local reset = 0
  if w.total > 0 then
    for j = w.idx, w.lo, -1 do
      if (allowed and j == w.idx and w.amount > 0) or bucket(w.key, j) > 0 then
        reset = (j + w.n + 1) * w.width - now
        break
      end
    end
  end
  local k = #reply
  reply[k + 1] = remaining
  reply[k + 2] = reset
  reply[k + 3] = w.refused
  reply[k + 4] = w.too_large
  reply[k + 5] = w.retry
end
for i = 1, ns do
  local k = #reply
  reply[k + 1] = slots[i].count
  reply[k + 2] = slots[i].refused
end
return reply
