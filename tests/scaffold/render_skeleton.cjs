// Renders deploy/backstage/skeleton as Backstage's scaffolder does, with nunjucks: first the
// fetch:template step's `values` from the template's `parameters` (a string that is one
// `${{ expression }}` keeps the expression's type, as the scaffolder's step inputs do), then
// every skeleton file's path and text from those values.
// stdin: {"skeleton": DIR, "values": {...the step's input.values...}, "runs": [PARAMETERS, ...]}
// stdout: [{RELATIVE_PATH: TEXT, ...}, ...], one per run.
'use strict';
const fs = require('fs');
const path = require('path');
const nunjucks = require('nunjucks');

const env = new nunjucks.Environment(null, {
  autoescape: false,
  tags: {variableStart: '${{', variableEnd: '}}'},
});
const SINGLE = /^\$\{\{([\s\S]*)\}\}$/;

function renderInput(value, context) {
  if (typeof value !== 'string') return value;
  const single = SINGLE.exec(value);
  if (single && !single[1].includes('${{')) {
    return JSON.parse(env.renderString('${{ (' + single[1] + ') | dump }}', context));
  }
  return env.renderString(value, context);
}

function files(dir, prefix, found) {
  for (const entry of fs.readdirSync(dir, {withFileTypes: true})) {
    const relative = prefix + entry.name;
    if (entry.isDirectory()) files(path.join(dir, entry.name), relative + '/', found);
    else found.push(relative);
  }
  return found;
}

const request = JSON.parse(fs.readFileSync(0, 'utf8'));
const skeleton = files(request.skeleton, '', []);
const out = request.runs.map(parameters => {
  const values = {};
  for (const [key, value] of Object.entries(request.values)) {
    values[key] = renderInput(value, {parameters});
  }
  const rendered = {};
  for (const file of skeleton) {
    const text = fs.readFileSync(path.join(request.skeleton, file), 'utf8');
    rendered[env.renderString(file, {values})] = env.renderString(text, {values});
  }
  return rendered;
});
process.stdout.write(JSON.stringify(out));
