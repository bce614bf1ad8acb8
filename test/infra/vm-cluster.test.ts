/**
 * The Terraform module's cloud-init user data, run for real on three "VMs" (vm-lab.ts: network
 * namespaces with their own addresses and root directories): rendered with the variables the
 * module passes (values as the module computes them for a 3-node cluster), it installs Node.js
 * and the `npm pack` tarball, fetches the secrets, writes the flags and starts the units. Then
 * the cluster forms, every gateway serves and honours the tokens from the secret store, an append
 * through a gateway is readable from every node, and the installed units pass systemd-analyze
 * verify. Needs root, iproute2 and network access to the npm registry (to warm npm's cache).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { renderTemplate, templatefileCalls, readModule } from './terraform-files.js';
import { addOsProgramStandIns, buildNodeDist, fakeGcpPort, outsideIp, VmLab } from './vm-lab.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const readNodeBin = path.join(import.meta.dirname, 'read-node.js');
const vmCount = 3;
const raftPort = 6001;
const clientPort = 9091;
const gatewayPort = 3000;
const adminPort = 9100;
const bootTimeoutMs = 8 * 60_000;
const formTimeoutMs = 90_000;
const token = 'walrus-vm-test-token-0123456789';
const clusterSecret = 'walrus-vm-test-cluster-secret-0123456789';

test('three VMs from the cloud-init user data form a cluster behind their gateways', async (t) => {
  t.timeout(20 * 60_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-vms-'));
  const lab = VmLab.create(dir, vmCount);
  t.teardown(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // The release: the `npm pack` tarball of this tree (dist is built), served like a download.
  const files = path.join(dir, 'files');
  fs.mkdirSync(path.join(files, 'releases'), { recursive: true });
  const packed = execFileSync(
    'npm',
    ['pack', '--ignore-scripts', '--silent', '--pack-destination', path.join(files, 'releases')],
    { cwd: repo, encoding: 'utf8' },
  )
    .trim()
    .split('\n')
    .pop()!;
  const release = path.join(files, 'releases', packed);
  // npm's cache gets the release's dependencies from the registry; the VMs install offline from it.
  execFileSync(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      path.join(dir, 'warm'),
      '--omit=dev',
      '--no-audit',
      '--no-fund',
      release,
    ],
    { stdio: 'ignore', timeout: 5 * 60_000 },
  );
  const { version: nodeVersion } = buildNodeDist(path.join(files, 'dist'));

  const secretNames = {
    cluster: 'projects/walrus-test/secrets/walrus-cluster-secret',
    tokens: 'projects/walrus-test/secrets/walrus-gateway-tokens',
  };
  await lab.startFakeGcp(files, {
    [secretNames.cluster]: `${clusterSecret}\n`,
    [secretNames.tokens]: JSON.stringify({ tokens: [{ token, scopes: ['admin'] }] }),
  });

  // Render the template with the variables the module passes, valued as the module values them.
  const module = await readModule(path.join(repo, 'infra/terraform'));
  const [call] = templatefileCalls(module);
  const template = fs.readFileSync(call!.template, 'utf8');
  const fakeGcp = `http://${outsideIp}:${fakeGcpPort}`;
  const b64 = (file: string): string => fs.readFileSync(path.join(repo, file)).toString('base64');
  const userData = lab.vms.map((vm) => {
    const vars: Record<string, string | number> = {
      node_id: vm.nodeId,
      node_ip: vm.ip,
      join_address: vm.nodeId === 1 ? '' : `${lab.vms[0]!.ip}:${raftPort}`,
      raft_port: raftPort,
      client_port: clientPort,
      gateway_port: gatewayPort,
      admin_port: adminPort,
      gateway_nodes: lab.vms.map((v) => `${v.ip}:${clientPort}`).join(','),
      data_dir: '/var/lib/walrus',
      data_device: '/dev/disk/by-id/google-walrus-data',
      node_version: nodeVersion,
      node_dist_url: `${fakeGcp}/files/dist`,
      release_url: `${fakeGcp}/files/releases/${packed}`,
      release_sha256: VmLab.sha256(release),
      metadata_url: `${fakeGcp}/computeMetadata/v1`,
      secretmanager_url: `${fakeGcp}/v1`,
      cluster_secret_name: secretNames.cluster,
      gateway_tokens_secret_name: secretNames.tokens,
      node_env_b64: Buffer.from('WALRUS_FSYNC=always\n').toString('base64'),
      boot_script_b64: b64('infra/cloud-init/walrus-boot.sh'),
      node_unit_b64: b64('infra/systemd/walrus-node.service'),
      gateway_unit_b64: b64('infra/systemd/walrus-gateway.service'),
    };
    t.deepEqual(Object.keys(vars).sort(), [...call!.keys].sort());
    return renderTemplate(template, vars);
  });

  // First boot of every VM at once, as a `terraform apply` does.
  const env = {
    HOME: process.env['HOME'] ?? '/root',
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
  };
  const boots = await Promise.all(
    lab.vms.map((vm, i) => lab.cloudInit(vm, userData[i]!, env, bootTimeoutMs)),
  );
  for (const [i, boot] of boots.entries()) t.is(boot.code, 0, `vm${i + 1} boot:\n${boot.output}`);

  for (const vm of lab.vms) {
    const calls = lab.shimCalls(vm);
    t.true(
      calls.includes('systemctl enable --now walrus-node.service walrus-gateway.service'),
      calls.join('\n'),
    );
    t.true(
      calls.some((c) => c.startsWith('useradd --system')),
      'the walrus user is made',
    );
    t.is(
      fs.readFileSync(path.join(vm.root, 'etc/walrus/secrets.env'), 'utf8'),
      `WALRUS_CLUSTER_SECRET=${clusterSecret}\n`,
    );
    t.is((fs.statSync(path.join(vm.root, 'etc/walrus/secrets.env')).mode & 0o777).toString(8), '640');
    t.is(
      execFileSync(path.join(vm.root, 'usr/local/bin/node'), ['--version'], { encoding: 'utf8' }).trim(),
      `v${nodeVersion}`,
    );
    const nodeEnv = fs.readFileSync(path.join(vm.root, 'etc/walrus/node.env'), 'utf8');
    t.is(
      nodeEnv.includes(`--join ${lab.vms[0]!.ip}:${raftPort}`),
      vm.nodeId !== 1,
      'node 1 bootstraps, the others join',
    );
    // The installed units pass systemd-analyze verify, with the installed programs in place.
    fs.mkdirSync(path.join(vm.root, 'usr/lib/systemd'), { recursive: true });
    execFileSync('cp', ['-a', '/usr/lib/systemd/system', path.join(vm.root, 'usr/lib/systemd/')], {
      stdio: 'ignore',
    });
    addOsProgramStandIns(vm.root);
    t.is(
      execFileSync(
        'systemd-analyze',
        [
          'verify',
          `--root=${vm.root}`,
          '--man=no',
          '/etc/systemd/system/walrus-node.service',
          '/etc/systemd/system/walrus-gateway.service',
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ).trim(),
      '',
    );
  }

  // systemd starts the units the boot script enabled.
  for (const vm of lab.vms) await lab.startUnit(vm, 'walrus-node.service');
  for (const vm of lab.vms) await lab.startUnit(vm, 'walrus-gateway.service');

  const outside = (argv: string[], timeoutMs = 15_000) => lab.run(lab.outsideNs, argv, {}, timeoutMs);
  const curl = async (url: string, ...extra: string[]): Promise<{ status: number; body: string }> => {
    const r = await outside(['curl', '-sS', '--max-time', '10', '-w', '\n%{http_code}', ...extra, url]);
    const lines = r.output.trimEnd().split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  };
  const auth = ['-H', `Authorization: Bearer ${token}`];
  const status = (): string =>
    lab.vms
      .flatMap((vm) => ['walrus-node.service', 'walrus-gateway.service'].map((u) => `vm${vm.nodeId}:${u}`))
      .map(
        (name) =>
          `--- ${name} ${JSON.stringify(lab.status(name).running)}\n${lab.status(name).tail.slice(-2000)}`,
      )
      .join('\n');

  // The cluster forms: one leader, every node a voter, seen through each VM's gateway.
  for (const vm of lab.vms) {
    const gw = `http://${vm.ip}:${gatewayPort}`;
    await eventually(
      `three voters and a leader through vm${vm.nodeId}'s gateway\n${status()}`,
      async () => {
        const r = await curl(`${gw}/v1/cluster/metrics`, ...auth);
        if (r.status !== 200) return undefined;
        const m = JSON.parse(r.body) as {
          current_leader: number | null;
          membership_config: { voters: number[] };
        };
        return m.current_leader !== null && m.membership_config.voters.length === vmCount ? m : undefined;
      },
      formTimeoutMs,
    );
    t.is((await curl(`${gw}/v1/health`)).status, 200);
    // The tokens came from the secret store: without one the gateway refuses.
    t.is((await curl(`${gw}/v1/topics`)).status, 401);
  }

  // An append through vm1's gateway is readable from every node's client port.
  const gw1 = `http://${lab.vms[0]!.ip}:${gatewayPort}`;
  const created = await curl(
    `${gw1}/v1/topics`,
    ...auth,
    '-H',
    'content-type: application/json',
    '-d',
    '{"name":"vm-test"}',
  );
  t.true(created.status === 201 || created.status === 200, created.body);
  const appended = await eventually('an append through the gateway', async () => {
    const r = await curl(
      `${gw1}/v1/topics/vm-test/records`,
      ...auth,
      '-H',
      'content-type: text/plain',
      '--data-binary',
      'hello from the VMs',
    );
    return r.status === 201 ? r : undefined;
  });
  t.is((JSON.parse(appended.body) as { firstOffset: number }).firstOffset, 0);
  for (const vm of lab.vms) {
    const read = await outside([process.execPath, readNodeBin, `${vm.ip}:${clientPort}`, 'vm-test']);
    t.is(read.code, 0, read.output);
    const { records } = JSON.parse(read.output) as { records: { offset: number; value: string }[] };
    t.deepEqual(records, [{ offset: 0, value: 'hello from the VMs' }], `read through node ${vm.nodeId}`);
  }

  // When the release's walrus-node has an admin port, the boot script turned it on: Prometheus
  // can scrape every node where the module's scrape config says.
  const nodeEnv = fs.readFileSync(path.join(lab.vms[0]!.root, 'etc/walrus/node.env'), 'utf8');
  if (nodeEnv.includes('--admin-port')) {
    for (const vm of lab.vms) {
      const metrics = await eventually('the admin port', async () => {
        const r = await curl(`http://${vm.ip}:${adminPort}/metrics`);
        return r.status === 200 ? r : undefined;
      });
      t.true(metrics.body.length > 0);
    }
  } else {
    t.false(
      execFileSync(path.join(lab.vms[0]!.root, 'opt/walrus/current/bin/walrus-node'), ['--help'], {
        encoding: 'utf8',
        env: { PATH: `${path.join(lab.vms[0]!.root, 'usr/local/bin')}:/usr/bin:/bin` },
      }).includes('--admin-port'),
    );
  }
  for (const vm of lab.vms)
    for (const unit of ['walrus-node.service', 'walrus-gateway.service'])
      t.true(lab.status(`vm${vm.nodeId}:${unit}`).running, `vm${vm.nodeId} ${unit} still runs`);
});
