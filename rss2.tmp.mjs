const t0 = performance.now();
await import(process.argv[2]);
const ms = performance.now()-t0;
const st = (await import('node:fs')).readFileSync('/proc/self/status','utf8');
const g=k=>st.match(new RegExp(k+':\\s+(\\d+)'))[1]/1024|0;
console.log(process.argv[2].slice(-40), 'import ms', ms|0, 'RSS', g('VmRSS'), 'HWM', g('VmHWM'), 'heapUsed', process.memoryUsage().heapUsed/1048576|0);
