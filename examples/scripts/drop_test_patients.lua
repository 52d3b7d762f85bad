-- Filter: drops messages about test patients, which the lab system sends
-- with the family name TEST or a medical record number starting with "TST".
local family = msg:get("PID-5.1")
if family and family:upper() == "TEST" then
  return false, "test patient (PID-5.1 is TEST)"
end
local mrn = msg:get("PID-3.1") or ""
if mrn:sub(1, 3) == "TST" then
  return false, "test patient (MRN " .. mrn .. ")"
end
return true
