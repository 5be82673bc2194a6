/**
 * Process facts from /proc (Linux): resident memory and process trees, for the bench's memory
 * figures. RSS counts shared pages once per process (so a sum over Postfix's processes counts the
 * shared libraries in each); PSS splits them and is printed beside it.
 */
import * as fs from 'node:fs';

export interface Memory {
  /** Sum of VmRSS over the processes, bytes. */
  readonly rss: number;
  /** Sum of Pss over the processes, bytes (0 when smaps_rollup is unreadable). */
  readonly pss: number;
  readonly processes: number;
}

function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** One process's memory; null when it is gone. */
export function processMemory(pid: number): { rss: number; pss: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    let pss = 0;
    try {
      pss = kbField(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
    } catch {
      // older kernels: no smaps_rollup
    }
    return { rss: kbField(status, 'VmRSS'), pss };
  } catch {
    return null;
  }
}

/** The parent pid of a process; null when it is gone. */
function parentPid(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...; comm may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[1]);
  } catch {
    return null;
  }
}

/** `root` and every process below it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentPid(pid);
    if (ppid === null) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (!isAlive(pid)) continue;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

export function treeMemory(root: number): Memory {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const pid of processTree(root)) {
    const m = processMemory(pid);
    if (m === null) continue;
    rss += m.rss;
    pss += m.pss;
    processes++;
  }
  return { rss, pss, processes };
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on every Linux architecture Node runs on). */
const CLK_TCK = 100;

/**
 * CPU seconds (user + system) used so far by `root` and the processes below it, including their
 * reaped children (cutime/cstime): a Postfix smtpd that exited counts in the master's cutime.
 */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // After "pid (comm) ": state is field 3, so field n is rest[n - 3]: utime 14, stime 15, cutime 16, cstime 17.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
    } catch {
      // exited between the listing and the read
    }
  }
  return ticks / CLK_TCK;
}

/**
 * CPU seconds (user + system) of one thread of a process: for Postern, its main thread (tid = pid),
 * where every line of JavaScript runs; the rest of its CPU is libuv's file-system threads and V8's.
 */
export function threadCpuSeconds(pid: number, tid: number = pid): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; it holds no memory and is as good as gone.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The soft limit on open files of this process (from /proc/self/limits). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  if (!m || m[1] === 'unlimited') return Number.POSITIVE_INFINITY;
  return Number(m[1]);
}

export const MiB = 1024 * 1024;
