/** The package ships no types; ioredis computes slots with it too. */
declare module "cluster-key-slot" {
  /** The Redis Cluster hash slot of a key (0-16383), hash tags included. */
  const calculateSlot: (key: string) => number
  export default calculateSlot
}
