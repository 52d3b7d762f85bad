-- Transform: replaces local lab codes in OBX-3 by LOINC codes from the
-- "lab-loinc" map and notes the change in an NTE after the last OBX.
local changed, last = 0, nil
for obx in msg:segments("OBX") do
  local code = obx:get("3.1")
  local loinc, display = map("lab-loinc", code)
  if loinc then
    obx:set("3.1", loinc)
    obx:set("3.2", display or "")
    obx:set("3.3", "LN")
    changed = changed + 1
  end
  last = obx
end
if last and changed > 0 then
  local nte = msg:add_segment("NTE", last)
  nte:set("1", "1")
  nte:set("3", changed .. " code(s) normalised to LOINC by Tern")
end
log("info", "normalised " .. changed .. " OBX code(s)")
