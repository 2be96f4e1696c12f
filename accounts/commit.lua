-- Commits a change to the accounts records if nobody else did first.
--
-- KEYS[1] version counter, KEYS[2] epoch, KEYS[3..] the record hashes.
-- ARGV[1] the version the change was validated against, ARGV[2] the
-- channel to announce the new version on, ARGV[3] an epoch for a store
-- that has none yet, then the changes: "s", hash index, field, value
-- (HSET) or "d", hash index, field (HDEL). Hash index 0 is KEYS[3].
--
-- Returns {1, new version} or, when the version moved, {0, current version}.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
redis.call('SET', KEYS[2], ARGV[3], 'NX')
local i = 4
while i <= #ARGV do
  local kind, key, field = ARGV[i], KEYS[3 + tonumber(ARGV[i + 1])], ARGV[i + 2]
  if key == nil then
    return redis.error_reply('accounts: no hash ' .. tostring(ARGV[i + 1]))
  end
  if kind == 's' then
    redis.call('HSET', key, field, ARGV[i + 3])
    i = i + 4
  elseif kind == 'd' then
    redis.call('HDEL', key, field)
    i = i + 3
  else
    return redis.error_reply('accounts: unknown change ' .. tostring(kind))
  end
end
local v = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], v)
return {1, v}
