import { MongoClient } from 'mongodb';
const c = await MongoClient.connect(`mongodb://127.0.0.1:29018/`);
const col = c.db('del2').collection('feed');
await col.drop().catch(() => {});
const N = 60000;
for (let i = 0; i < N; i += 5000) {
  await col.insertMany(Array.from({ length: 5000 }, (_, j) => { const o = `f${String(i + j).padStart(6, '0')}`; return { _id: `${o}/a1`, owner: o, activityId: i+j < 50000 ? 'a1' : 'a2', actor: 'x', time: new Date() }; }), { ordered: false });
}
await col.createIndex({activityId: 1});
for (const lim of [5000, 20000]) {
  let t = performance.now();
  const ids = (await col.find({ activityId: 'a1' }, { projection: { _id: 1 } }).limit(lim).toArray()).map(d => d._id);
  const t1 = performance.now() - t;
  t = performance.now();
  const r = await col.deleteMany({ _id: { $in: ids } });
  console.log(`limit ${lim}: find ${t1.toFixed(0)} ms, deleteMany $in ${(performance.now() - t).toFixed(0)} ms, deleted ${r.deletedCount}`);
}
let t = performance.now();
const r = await col.deleteMany({ activityId: 'a1' });
console.log(`deleteMany by activityId (rest): ${(performance.now() - t).toFixed(0)} ms, deleted ${r.deletedCount}`);
console.log('left a1', await col.countDocuments({activityId: 'a1'}), 'a2', await col.countDocuments({activityId: 'a2'}));
await c.close();
