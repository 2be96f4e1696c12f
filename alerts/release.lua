-- Releases a claim only if this replica still holds it: a claim that
-- expired and was taken by another replica meanwhile stays.
-- KEYS[1] claim key; ARGV[1] the releasing replica's token.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
