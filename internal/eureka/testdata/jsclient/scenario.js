'use strict';
// Drives the real eureka-js-client for internal/eureka/jsclient_test.go.
//
// Configuration comes from the environment:
//   EUREKA_HOST, EUREKA_PORT   the Cairn server
//   EUREKA_SERVICE_PATH        e.g. /eureka/v2/apps/ (the client's default) or /eureka/apps/
//   EUREKA_INSTANCE            JSON of the client's `instance` config
//   EUREKA_DELTA               "1" for shouldUseDelta
//   EUREKA_HEARTBEAT_MS, EUREKA_FETCH_MS
//
// Protocol: the Go test writes one JSON command per line on stdin; this
// script writes one JSON object per line on stdout: events
// ({"event":...}) as they happen and replies ({"reply":...}) to commands.
// Nothing else goes to stdout (the client's logger is routed into events).

const readline = require('readline');
const path = require('path');
const { Eureka } = require(path.join(__dirname, 'node_modules', 'eureka-js-client'));

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errText(err) {
  if (!err) return null;
  return String(err && err.stack ? err.stack : err);
}

function fmtArgs(args) {
  return args.map((a) => {
    if (a instanceof Error) return a.stack || String(a);
    if (typeof a === 'object') {
      try { return JSON.stringify(a); } catch (e) { return String(a); }
    }
    return String(a);
  }).join(' ');
}

const logger = {
  level() { return 0; },
  debug(...a) { out({ event: 'log', level: 'debug', msg: fmtArgs(a) }); },
  info(...a) { out({ event: 'log', level: 'info', msg: fmtArgs(a) }); },
  warn(...a) { out({ event: 'log', level: 'warn', msg: fmtArgs(a) }); },
  error(...a) { out({ event: 'log', level: 'error', msg: fmtArgs(a) }); },
};

const env = process.env;
const client = new Eureka({
  logger,
  shouldUseDelta: env.EUREKA_DELTA === '1',
  instance: JSON.parse(env.EUREKA_INSTANCE),
  eureka: {
    host: env.EUREKA_HOST,
    port: Number(env.EUREKA_PORT),
    servicePath: env.EUREKA_SERVICE_PATH,
    heartbeatInterval: Number(env.EUREKA_HEARTBEAT_MS || 200),
    registryFetchInterval: Number(env.EUREKA_FETCH_MS || 250),
    maxRetries: 1,
    requestRetryDelay: 100,
  },
  // Report every request the client makes (method and full URL).
  requestMiddleware(opts, done) {
    const uri = opts.baseUrl.endsWith('/') || opts.uri === '' ? opts.baseUrl + opts.uri : `${opts.baseUrl}/${opts.uri}`;
    out({ event: 'request', method: (opts.method || 'GET').toUpperCase(), url: uri });
    done(opts);
  },
});

// Wrap the fetches so the test sees every full and delta fetch and its
// outcome: the client itself only logs a failed delta.
const origFull = client.fetchFullRegistry.bind(client);
client.fetchFullRegistry = function fetchFullRegistry(cb) {
  origFull((err) => {
    out({ event: 'fetch', kind: 'full', err: errText(err) });
    if (cb) cb(err);
  });
};
const origDelta = client.fetchDelta.bind(client);
client.fetchDelta = function fetchDelta(cb) {
  origDelta((err) => {
    out({ event: 'fetch', kind: 'delta', err: errText(err) });
    if (cb) cb(err);
  });
};

['registered', 'deregistered', 'heartbeat', 'registryUpdated'].forEach((name) => {
  client.on(name, () => out({ event: name }));
});

function summarize(list) {
  return list.map((i) => ({
    instanceId: i.instanceId,
    hostName: i.hostName,
    app: i.app,
    ipAddr: i.ipAddr,
    status: i.status,
    vipAddress: i.vipAddress,
    port: i.port,
    securePort: i.securePort,
    metadata: i.metadata,
    actionType: i.actionType,
  }));
}

let stopping = false;
const commands = {
  start(cmd) {
    client.start((err) => out({ reply: 'start', id: cmd.id, err: errText(err) }));
  },
  instances(cmd) {
    out({ reply: 'instances', id: cmd.id, app: cmd.app, instances: summarize(client.getInstancesByAppId(cmd.app)) });
  },
  vip(cmd) {
    out({ reply: 'vip', id: cmd.id, vip: cmd.vip, instances: summarize(client.getInstancesByVipAddress(cmd.vip)) });
  },
  // stop() right after a heartbeat has completed: stop() cannot cancel a
  // heartbeat already in flight, and one that lands after the DELETE gets a
  // 404 and re-registers (a client race, not what is under test).
  stop(cmd) {
    if (stopping) return;
    stopping = true;
    client.once('heartbeat', () => {
      client.stop((err) => out({ reply: 'stop', id: cmd.id, err: errText(err) }));
    });
  },
  exit() {
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ event: 'badcommand', line });
    return;
  }
  const fn = commands[cmd.cmd];
  if (!fn) {
    out({ event: 'badcommand', line });
    return;
  }
  try {
    fn(cmd);
  } catch (e) {
    out({ reply: cmd.cmd, id: cmd.id, err: errText(e) });
  }
});
// The test closing stdin (or dying) ends the script.
rl.on('close', () => process.exit(0));
process.on('uncaughtException', (e) => {
  out({ event: 'uncaught', err: errText(e) });
  process.exit(3);
});
out({ event: 'ready', node: process.version });
