-- Argo CD health check for modelplane.io/Model. Install it under
-- resource.customizations.health.modelplane.io_Model in the argocd-cm ConfigMap
-- (see docs/kubernetes.md). Reads only status.observedGeneration, status.conditions and
-- status.rollout, which the operator keeps current.
local hs = { status = "Progressing", message = "Waiting for the modelplane operator" }
if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, condition in ipairs(obj.status.conditions or {}) do
  conditions[condition.type] = condition
end

local function said(condition)
  local message = condition.message or ""
  if message == "" then
    return condition.reason or ""
  end
  return (condition.reason or "") .. ": " .. message
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(stalled)
  return hs
end

local rollout = obj.status.rollout
if rollout ~= nil and rollout.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Rollout paused at step " .. tostring((rollout.step or 0) + 1)
  return hs
end

local progressing = conditions["RolloutProgressing"]
if progressing ~= nil and progressing.status == "True" then
  hs.message = said(progressing)
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready)
  return hs
end
if ready ~= nil then
  hs.message = said(ready)
end
return hs
