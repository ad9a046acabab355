import { MongoClient } from 'mongodb';
const c = await MongoClient.connect(`mongodb://127.0.0.1:29018/`);
const col = c.db('del').collection('feed');
await col.drop().catch(() => {});
const N = 50000;
for (let i = 0; i < N; i += 5000) {
  await col.insertMany(Array.from({ length: 5000 }, (_, j) => { const o = `f${String(i + j).padStart(6, '0')}`; return { _id: `${o}/a1`, owner: o, activityId: 'a1', actor: 'x', time: new Date() }; }), { ordered: false });
}
const ids = (k) => Array.from({ length: 100 }, (_, j) => `f${String(k * 100 + j).padStart(6, '0')}/a1`);
let t = performance.now();
await col.bulkWrite(ids(0).map((_id) => ({ deleteOne: { filter: { _id } } })), { ordered: false });
console.log('bulk deleteOne x100', (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
let r = await col.deleteMany({ _id: { $in: ids(1) } });
console.log('deleteMany $in 100', (performance.now() - t).toFixed(0), 'ms', r.deletedCount);
t = performance.now();
await col.findOne({ _id: ids(2)[0] });
console.log('findOne by _id', (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
r = await col.deleteOne({ _id: ids(2)[0] });
console.log('deleteOne by _id', (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
await col.insertMany(ids(1).map(_id => ({_id, owner: 'x', activityId: 'a1', actor: 'x', time: new Date()})), {ordered: false});
console.log('insertMany 100', (performance.now() - t).toFixed(0), 'ms');
await c.close();
