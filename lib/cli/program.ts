/**
 * The `pts` command line: commander wiring only; every command lives in its own module.
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT, toExit, type ExitCode } from './exit';

// Command modules are loaded on use, so `pts --help` and usage errors stay fast.
const commands = () => import('./commands');
const demoModule = () => import('./demo');
const serveModule = () => import('./serve');
const tokens = () => import('./token');
const alertsModule = () => import('./alerts');
const schedulesModule = () => import('./schedules');
const logsModule = () => import('./logs');
const retentionModule = () => import('./retention');

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultDashboardRoot } from '../dashboard/plugin';
import { CONTAINER_ACTIONS, TASK_ACTIONS, TRANSITIONS, type TaskAction } from '../states';

/** What each action command does; its help adds the states it applies to, from the table. */
const ACTION_HELP: Record<TaskAction, string> = {
  retry: 'retry tasks with a fresh retry budget',
  cancel: "cancel tasks; a running task's worker loses its lease",
  skip: 'skip a task: it counts as done and its dependents may run',
  reset: 'reset tasks to pending as if just added',
  delete: 'delete a task that no other task depends on',
  markSucceeded: 'mark a task succeeded with a result, for a step fixed by hand',
};

/** The package version (package.json is found the same way from lib/ and dist/lib/). */
function version(): string {
  try {
    const pkg = path.join(path.dirname(defaultDashboardRoot()), 'package.json');
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

type AnyOpts = Record<string, unknown>;
/** The command's own options merged with the global ones (`--mongodb-uri`). */
const all = (cmd: Command): AnyOpts => cmd.optsWithGlobals();

export function buildProgram(): Command {
  const program = new Command('pts')
    .description('Inspect and operate persistent-task-status pipelines kept in MongoDB.')
    .version(version(), '-V, --version')
    .addOption(
      new Option('--mongodb-uri <uri>', 'MongoDB connection string (database in the path)').env(
        'MONGODB_URI',
      ),
    )
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('status')
    .description('list containers, or show one container and its tasks')
    .argument('[container]', 'container name')
    .option('--json', 'machine-readable output')
    .option('--status <list>', 'containers: only these statuses (comma separated)')
    .option('--prefix <prefix>', 'containers: only names starting with this')
    .option('--state <list>', 'tasks: only these states (comma separated), spawned children included')
    .option('--parent <task>', 'tasks: only the children this task spawned (without it, children are counted under their parent)')
    .option('--limit <n>', 'page size (1-1000)')
    .option('--cursor <cursor>', 'continue a listing from this cursor')
    .action((name: string | undefined, _o, cmd: Command) => commands().then((m) => m.status(name, all(cmd))));

  program
    .command('watch')
    .description('live progress of a container until it finishes (exit 1 if it failed)')
    .argument('<container>', 'container name')
    .option('--interval <duration>', 'refresh interval, e.g. 500ms or 2s', '500ms')
    .option('--json', 'print one JSON line per refresh')
    .action((name: string, _o, cmd: Command) => commands().then((m) => m.watch(name, all(cmd))));

  program
    .command('logs')
    .description("print a step's logs (or every step's), oldest first; -f follows them until the container finishes")
    .argument('<container>', 'container name')
    .argument('[step]', 'task name (default: every task, each line tagged with its step)')
    .option('-f, --follow', 'keep printing new lines until the container is finished (or Ctrl-C)')
    .option('--attempt <n>', "only this attempt (the task's invokeCount)")
    .option('--interval <duration>', 'follow: poll interval, e.g. 500ms or 2s', '1s')
    .option('--json', 'one JSON object per line')
    .action((name: string, step: string | undefined, _o, cmd: Command) => logsModule().then((m) => m.logs(name, step, all(cmd))));

  // One command per action of the transition table; the container-wide ones take the task as optional.
  for (const kind of TASK_ACTIONS) {
    if (kind === 'markSucceeded') continue; // `pts mark-succeeded`, below: it takes --result
    const wholeContainer = (CONTAINER_ACTIONS as readonly string[]).includes(kind);
    program
      .command(kind)
      .description(
        `${ACTION_HELP[kind]} (${wholeContainer ? 'all, or one; ' : ''}from ${TRANSITIONS[kind].from.join(', ')})`,
      )
      .argument('<container>', 'container name')
      .argument(
        wholeContainer ? '[task]' : '<task>',
        wholeContainer ? 'task name (default: every eligible task)' : 'task name',
      )
      .option('--json', 'machine-readable output')
      .action((name: string, task: string | undefined, _o, cmd: Command) =>
        commands().then((m) => m.action(kind, name, task, all(cmd))),
      );
  }

  program
    .command('rerun')
    .description(
      'reset a step and every task that depends on it (transitively, whatever their state; running ones lose their lease); independent tasks are kept',
    )
    .argument('<container>', 'container name')
    .requiredOption('--from <step>', 'the step to re-run from')
    .option('--no-downstream', 'reset only the step itself')
    .option('--dry-run', 'only print the plan; change nothing')
    .option('--json', 'machine-readable output (the plan)')
    .action((name: string, _o, cmd: Command) => commands().then((m) => m.rerun(name, all(cmd) as never)));

  program
    .command('mark-succeeded')
    .description(
      `${ACTION_HELP.markSucceeded} (from ${TRANSITIONS.markSucceeded.from.join(', ')}); its dependents may run`,
    )
    .argument('<container>', 'container name')
    .argument('<task>', 'task name')
    .option('--result <json>', 'the result to store, as JSON (default: null)')
    .option('--json', 'machine-readable output (the task)')
    .action((name: string, task: string, _o, cmd: Command) =>
      commands().then((m) => m.markSucceeded(name, task, all(cmd) as never)),
    );

  program
    .command('resume')
    .description('recover tasks whose worker died (expired leases) so a runner picks them up again')
    .argument('<container>', 'container name')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => commands().then((m) => m.resume(name, all(cmd))));

  for (const [verb, paused] of [
    ['pause', true],
    ['unpause', false],
  ] as const) {
    program
      .command(verb)
      .description(
        paused
          ? 'pause a container: no task of it is claimed until `pts unpause`; running tasks finish'
          : 'unpause a paused container: its tasks may be claimed again',
      )
      .argument('<container>', 'container name')
      .option('--json', 'machine-readable output (the container summary)')
      .action((name: string, _o, cmd: Command) => commands().then((m) => m.setPaused(name, paused, all(cmd))));
  }

  program
    .command('prune')
    .description('delete finished containers older than a duration, or what the retention policies let go (--policy); dry run unless --yes')
    .option('--older-than <duration>', 'e.g. 30m, 12h, 7d, 2w (time since the container finished; required unless --policy)')
    .option('--status <list>', 'finished statuses to prune', 'succeeded,failed,cancelled')
    .option('--prefix <prefix>', 'only containers whose name starts with this')
    .option('--policy', 'apply the stored retention policies (pts retention) instead of --older-than')
    .option('--dry-run', 'only list what would be deleted (the default without --yes)')
    .option('--limit <n>', 'with --policy: at most this many containers (default 100)')
    .option('--yes', 'really delete (otherwise only list)')
    .option('--json', 'machine-readable output')
    .action((_o, cmd: Command) => {
      const o = all(cmd);
      if (o.policy) return retentionModule().then((m) => m.prunePolicy(o as never));
      return commands().then((m) => m.prune(o as never));
    });

  program
    .command('serve')
    .description('run the HTTP API and the dashboard')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '8080')
    .option('--no-auth', 'disable token authentication (loopback hosts only)')
    .option('--log', 'log requests (JSON lines on stdout)')
    .option('--request-timeout <ms>', 'most time a client may take to send a whole request, 0 = none (default 60000)')
    .option('--headers-timeout <ms>', "most time a client may take to send a request's headers (default 20000)")
    .option('--connection-timeout <ms>', 'close a socket silent for this long, 0 = never; must exceed 30000 (default 120000)')
    .option('--keep-alive-timeout <ms>', 'close an idle keep-alive connection after this long (default 72000)')
    .option('--no-alerts', 'do not deliver alerts from this process (by default it does while it holds the alert lease)')
    .option('--scheduler', 'also run the scheduler, for the pipelines --module defines')
    .option('--module <file>', 'with --scheduler: a module whose default (or `register`) export takes the client and defines pipelines')
    .option('--metrics-group-prefix <prefixes>', 'comma-separated container name prefixes the step histograms group by (default: pipeline name, else the first /-segment)')
    .option('--metrics-max-label-sets <n>', 'most distinct (group, step) pairs in the step histograms; the rest count as other (default 200)')
    .action((_o, cmd: Command) => serveModule().then((m) => m.serve(all(cmd) as never)));

  const schedule = program.command('schedule').description('schedules of pipelines (docs/schedules.md): list, add, pause, unpause, trigger, backfill, delete');
  schedule
    .command('list')
    .description('list schedules with their next fire time and last skipped slot')
    .option('--pipeline <name>', 'only the schedules of this pipeline')
    .option('--json', 'machine-readable output (with the next 5 fire times and recent skipped records)')
    .action((_o, cmd: Command) => schedulesModule().then((m) => m.scheduleList(all(cmd))));
  schedule
    .command('add')
    .description('add or edit the schedule of a pipeline (defined by the scheduler processes, not here)')
    .argument('<pipeline>', 'pipeline name')
    .requiredOption('--cron <expr>', "5 fields (or 6 with leading seconds), or a nickname like '@hourly'")
    .option('--timezone <zone>', 'IANA time zone the expression is read in (default UTC)')
    .option('--name <name>', 'schedule name (default: the pipeline name)')
    .option('--overlap <policy>', 'skip, bufferOne, cancelOther or allowAll (default skip)')
    .option('--catchup-window <duration>', 'how late a slot may still fire, e.g. 1h (default 365d)')
    .option('--jitter <duration>', 'fire each slot up to this much later, e.g. 30s (default 0)')
    .option('--paused', 'create it paused (on creation only)')
    .option('--pause-on-failure', 'pause the schedule when one of its runs fails')
    .option('--json', 'machine-readable output')
    .action((pipeline: string, _o, cmd: Command) => schedulesModule().then((m) => m.scheduleAdd(pipeline, all(cmd) as never)));
  schedule
    .command('pause')
    .description('pause a schedule: its slots are recorded as skipped (paused)')
    .argument('<name>', 'schedule name')
    .option('--note <text>', 'why (shown by list)')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => schedulesModule().then((m) => m.schedulePause(name, true, all(cmd))));
  schedule
    .command('unpause')
    .description('unpause: the next slot after now fires; the ones due while paused stay skipped')
    .argument('<name>', 'schedule name')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => schedulesModule().then((m) => m.schedulePause(name, false, all(cmd))));
  schedule
    .command('trigger')
    .description('fire the schedule now, under its overlap policy (a scheduler that defines the pipeline creates the run)')
    .argument('<name>', 'schedule name')
    .option('--json', 'machine-readable output (the run record)')
    .action((name: string, _o, cmd: Command) => schedulesModule().then((m) => m.scheduleTrigger(name, all(cmd))));
  schedule
    .command('backfill')
    .description('fire every slot of the schedule in [from, to] that was not decided yet')
    .argument('<name>', 'schedule name')
    .requiredOption('--from <date>', 'ISO-8601, e.g. 2026-05-01T00:00:00Z')
    .requiredOption('--to <date>', 'ISO-8601, in the past')
    .option('--overlap <policy>', "overlap policy for these slots (default: the schedule's)")
    .option('--json', 'machine-readable output (the run records)')
    .action((name: string, _o, cmd: Command) => schedulesModule().then((m) => m.scheduleBackfill(name, all(cmd) as never)));
  schedule
    .command('delete')
    .description('delete a schedule (its run history is kept)')
    .argument('<name>', 'schedule name')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => schedulesModule().then((m) => m.scheduleDelete(name, all(cmd))));

  program
    .command('runs')
    .description("a pipeline's run history: each slot's decision, container status, step durations, definition changes")
    .argument('<pipeline>', 'pipeline name')
    .option('--limit <n>', 'page size (1-1000)', '20')
    .option('--cursor <cursor>', 'continue from this cursor')
    .option('--json', 'machine-readable output')
    .action((pipeline: string, _o, cmd: Command) => schedulesModule().then((m) => m.runs(pipeline, all(cmd))));

  program
    .command('scheduler')
    .description('run the scheduler in the foreground for the pipelines a module defines (any number may run)')
    .option('--module <file>', 'a .js/.mjs module whose default (or `register`) export takes the client and defines pipelines')
    .option('--interval <duration>', 'time between passes', '1s')
    .action((_o, cmd: Command) => schedulesModule().then((m) => m.scheduler(all(cmd))));

  program
    .command('demo')
    .description('run a sample pipeline (with a retried failure and a crash-resume) and open the dashboard')
    .option('--port <port>', 'dashboard port (0 = any free port)', '8080')
    .option('--no-open', 'do not open a browser')
    .option('--exit-when-done', 'exit when the pipeline finishes instead of serving until Ctrl-C')
    .option('--fast', 'run about 8x faster (for tests)')
    .action((_o, cmd: Command) => demoModule().then((m) => m.demo(all(cmd) as never)));

  program
    .command('demo-worker', { hidden: true })
    .requiredOption('--container <name>')
    .requiredOption('--lease-ms <ms>')
    .requiredOption('--speed <factor>')
    .action((_o, cmd: Command) => demoModule().then((m) => m.demoWorker(all(cmd) as never)));

  const token = program.command('token').description('manage API tokens of the HTTP service');
  token
    .command('create')
    .description('create a token and print its secret (shown only once)')
    .addOption(
      new Option('--scope <scope>', 'what the token may do')
        .choices(['admin', 'read', 'worker'])
        .makeOptionMandatory(),
    )
    .option('--prefix <prefix>', 'only containers whose name starts with this', '')
    .option('--name <name>', 'a label for the token')
    .option('--json', 'machine-readable output')
    .action((_o, cmd: Command) => tokens().then((m) => m.tokenCreate(all(cmd) as never)));
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .option('--all', 'include revoked tokens')
    .option('--json', 'machine-readable output')
    .action((_o, cmd: Command) => tokens().then((m) => m.tokenList(all(cmd))));
  token
    .command('revoke')
    .description('revoke a token by id')
    .argument('<id>', 'token id (from token list)')
    .option('--json', 'machine-readable output')
    .action((id: string, _o, cmd: Command) => tokens().then((m) => m.tokenRevoke(id, all(cmd))));

  const retention = program.command('retention').description('retention policies: which finished containers the sweep deletes, by name prefix');
  retention
    .command('list')
    .description('list retention policies, by prefix')
    .option('--json', 'machine-readable output')
    .action((_o, cmd: Command) => retentionModule().then((m) => m.retentionList(all(cmd))));
  retention
    .command('set')
    .description("create or replace the policy of a container name prefix ('' = every container; the longest matching prefix governs)")
    .argument('<prefix>', 'container name prefix')
    .option('--succeeded-days <n>', "delete succeeded containers n days after they finished ('none': never)")
    .option('--failed-days <n>', "delete failed containers n days after they finished ('none': never)")
    .option('--cancelled-days <n>', "delete cancelled containers n days after they finished (default: as --failed-days)")
    .option('--keep-last-runs <k>', "keep only the newest k runs of each pipeline under the prefix ('none': all)")
    .option('--json', 'machine-readable output')
    .action((prefix: string, _o, cmd: Command) => retentionModule().then((m) => m.retentionSet(prefix, all(cmd) as never)));
  retention
    .command('delete')
    .description('delete the policy of a prefix')
    .argument('<prefix>', 'container name prefix')
    .option('--json', 'machine-readable output')
    .action((prefix: string, _o, cmd: Command) => retentionModule().then((m) => m.retentionDelete(prefix, all(cmd))));

  const alerts = program.command('alerts').description('alert rules (webhooks) and their deliveries');
  alerts
    .command('add')
    .description('add an alert rule: events of containers under a prefix, POSTed to a webhook, signed')
    .argument('<name>', 'rule name')
    .requiredOption('--events <list>', 'comma separated: container:failed, task:failed, task:timeout, task:stalled, schedule:missed')
    .requiredOption('--url <url>', 'the webhook (http: or https:)')
    .option('--secret <secret>', 'HMAC-SHA256 key of the signature (default: $PTS_ALERT_SECRET)')
    .option('--prefix <prefix>', 'only containers whose name starts with this', '')
    .option('--template <template>', "body: 'json' or 'slack' (a Slack-compatible incoming webhook)", 'json')
    .option('--disabled', 'store the rule disabled')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => alertsModule().then((m) => m.alertsAdd(name, all(cmd) as never)));
  alerts
    .command('list')
    .description('list alert rules (never their secrets)')
    .option('--json', 'machine-readable output')
    .action((_o, cmd: Command) => alertsModule().then((m) => m.alertsList(all(cmd))));
  alerts
    .command('delete')
    .description('delete an alert rule (its pending deliveries end as failed)')
    .argument('<name>', 'rule name')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => alertsModule().then((m) => m.alertsDelete(name, all(cmd))));
  for (const enabled of [true, false]) {
    alerts
      .command(enabled ? 'enable' : 'disable')
      .description(enabled ? 'enable an alert rule' : 'disable an alert rule (no new deliveries; pending ones are still sent)')
      .argument('<name>', 'rule name')
      .option('--json', 'machine-readable output')
      .action((name: string, _o, cmd: Command) => alertsModule().then((m) => m.alertsEnable(name, enabled, all(cmd))));
  }
  alerts
    .command('test')
    .description("send a signed test body to the rule's webhook now (nothing stored; exit 1 unless 2xx)")
    .argument('<name>', 'rule name')
    .option('--json', 'machine-readable output')
    .action((name: string, _o, cmd: Command) => alertsModule().then((m) => m.alertsTest(name, all(cmd))));
  alerts
    .command('deliveries')
    .description('list deliveries, newest first, with their attempts')
    .option('--rule <name>', 'only this rule')
    .option('--status <status>', 'pending, delivered or failed')
    .option('--prefix <prefix>', 'only containers whose name starts with this')
    .option('--limit <n>', 'at most this many (1-1000)', '50')
    .option('--attempts', 'also print every attempt of each delivery (when, HTTP status or error, duration, by which process)')
    .option('--json', 'machine-readable output (with every attempt)')
    .action((_o, cmd: Command) => alertsModule().then((m) => m.alertsDeliveries(all(cmd) as never)));

  return program;
}

/** Parses argv, runs the command and resolves to the exit code (never throws). */
export async function runCli(argv: string[]): Promise<ExitCode> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0)
        return EXIT.OK;
      return EXIT.USAGE; // commander already printed the message
    }
    const { message, code } = toExit(err);
    process.stderr.write(`pts: ${message}\n`);
    return code;
  }
}
