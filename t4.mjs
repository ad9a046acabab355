import { MongoClient } from 'mongodb';
const c = await MongoClient.connect(`mongodb://127.0.0.1:29018/`);
const col = c.db('del3').collection('feed');
await col.drop().catch(() => {});
const N = 50000;
for (let i = 0; i < N; i += 5000) {
  await col.insertMany(Array.from({ length: 5000 }, (_, j) => { const o = `f${String(i + j).padStart(6, '0')}`; return { _id: `${o}/a1`, owner: o, activityId: 'a1', actor: 'x', time: new Date() }; }), { ordered: false });
}
let t = performance.now();
try { const r = await col.deleteMany({ activityId: 'a1' }); console.log('deleted', r.deletedCount); } catch (e) { console.log('error', e.message.slice(0, 300)); }
console.log(`${(performance.now() - t).toFixed(0)} ms`);
// bounded by owner ranges: owner < f025000
t = performance.now();
const r2 = await col.deleteMany({ activityId: 'a1', owner: { $lt: 'f025000' } });
console.log('range delete', r2.deletedCount, `${(performance.now() - t).toFixed(0)} ms`);
await c.close();
