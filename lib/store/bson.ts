/**
 * The BSON classes the library creates, taken from the driver that mongoose (our only peer
 * dependency) bundles: `mongodb` is not a dependency of ours, so requiring it directly would only
 * work where a package manager happens to hoist mongoose's copy.
 * @internal
 */
import mongoose from 'mongoose';

export const ObjectId = mongoose.mongo.ObjectId;
export type ObjectId = InstanceType<typeof mongoose.mongo.ObjectId>;
export const Timestamp = mongoose.mongo.Timestamp;
export type Timestamp = InstanceType<typeof mongoose.mongo.Timestamp>;
